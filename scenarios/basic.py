"""Basic: a leader is elected, replicates commands, crashes, and another takes over.

What to watch: three followers time out at different moments (randomized
election timeouts), so one asks for votes first and wins. Commands commit
once a majority stores them. When the leader crashes, the others notice
the silence, elect a new leader in a higher term, and keep committing; the
crashed node restarts from its disk and catches up.
"""

from simulator import WorkflowExecutor

PARAMS = {"commands": 10}
#: Also on node processes over gRPC: ``raftsim run NAME --transport grpc``.
NETWORKS = ("simulated", "grpc")


async def scenario(sim):
    cluster = sim.cluster
    leader = await cluster.wait_for_leader()
    sim.say(f"n{leader} leads; the cluster takes {sim.params['commands']} workflow commands")
    for number in range(sim.params["commands"]):
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["build", "test"]))
    await cluster.wait_caught_up()
    sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
              "every node applied the same commands")

    cluster.crash(leader)
    new_leader = await cluster.wait_for_leader(timeout=10)
    sim.check(new_leader != leader, f"a new leader (n{new_leader}) took over from n{leader}")
    await cluster.propose(WorkflowExecutor.start("after-crash", ["deploy"]))

    cluster.restart(leader)
    await cluster.check_liveness(within=10)
    sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
              f"n{leader} caught up after restarting")
