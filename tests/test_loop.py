"""What the loop does at each step is decided by one pure function, ``loop.plan_step``: the plans
of a whole run, a preempted step, a halted one and an evaluation cut by SIGTERM. The end-to-end
tests (test_train, test_faults, test_robustness, test_multiprocess) pin what the plans do. The
state's finiteness check, on the host and jitted, gives one answer."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pretrainx.core.loop import Cadence, StepPlan, plan_step

CADENCE = Cadence(total=10, log_every=3, eval_every=4, save_every=5)


def steps_where(flag: str, cadence: Cadence = CADENCE) -> list[int]:
    return [n for n in range(1, cadence.total + 1) if getattr(plan_step(n, cadence), flag)]


def test_a_whole_run_logs_evaluates_and_saves_on_its_cadences_and_at_the_end():
    assert steps_where("log") == [3, 6, 9, 10]
    assert steps_where("evaluate") == [4, 8, 10]
    assert steps_where("save") == [5, 10]
    # the state is proved finite exactly where it is about to be evaluated or saved
    assert steps_where("check") == [4, 5, 8, 10]
    assert steps_where("stop") == []


def test_a_dispatch_of_several_steps_ends_at_the_next_step_with_a_plan():
    # CADENCE logs at 3, 6, 9, evaluates at 4, 8, saves at 5, ends at 10: the loop's dispatches
    # end where a step has something to do, so no plan falls inside one
    ends = [CADENCE.next_event(done) for done in range(10)]
    assert ends == [3, 3, 3, 4, 5, 6, 8, 8, 9, 10]
    busy = [n for n in range(1, 11) if any(getattr(plan_step(n, CADENCE), f)
                                            for f in ("log", "evaluate", "save"))]
    assert sorted(set(ends)) == busy
    tasks = Cadence(total=20, log_every=10, eval_every=0, save_every=20, tasks_every=7)
    assert [tasks.next_event(d) for d in (0, 7, 10, 14, 19)] == [7, 10, 14, 20, 20]


def test_no_eval_cadence_never_evaluates_but_the_last_step_still_saves():
    never = Cadence(total=6, log_every=2, eval_every=0, save_every=4)
    assert steps_where("evaluate", never) == []
    assert steps_where("save", never) == [4, 6]


def test_a_preempted_step_is_saved_not_evaluated_and_stops_the_run():
    plan = plan_step(8, CADENCE, preempted=True)   # an eval step, off the save cadence
    assert (plan.evaluate, plan.save, plan.stop, plan.preempted) == (False, True, True, True)
    assert plan.check                              # never a non-finite state saved
    off_cadence = plan_step(7, CADENCE, preempted=True)
    assert off_cadence.save and off_cadence.stop and not off_cadence.log


def test_a_halted_step_leaves_as_a_crash_would_and_keeps_its_log_row():
    plan = plan_step(10, CADENCE, halt=True, preempted=True)   # halt wins: no save at all
    assert (plan.evaluate, plan.save, plan.check, plan.preempted) == (False, False, False, False)
    assert plan.stop and plan.halt and plan.log


def test_a_sigterm_during_the_eval_saves_the_step_without_it_and_stops():
    plan = plan_step(4, CADENCE)
    assert plan.evaluate and not plan.save
    cut = plan.eval_interrupted()
    assert cut == StepPlan(4, log=False, evaluate=False, save=True, preempted=True)
    assert cut.stop and plan.evaluate          # the plan is frozen: a new one, not a mutation


@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
def test_both_finiteness_checks_agree_on_every_dtype(bad):
    """The host-memory check (one process on CPU) and the jitted one (GPUs, several processes)."""
    from pretrainx.core import loop
    tree = {"w": jnp.ones((3, 2), jnp.bfloat16), "mu": jnp.zeros(4), "step": jnp.int32(3),
            "v": {"x": jnp.arange(5.0)}}
    if bad is not None:
        tree["v"]["x"] = tree["v"]["x"].at[2].set(bad)
    host = loop._all_finite_in_host_memory(tree)
    assert host == bool(jax.jit(loop._all_finite)(tree)) == (bad is None)
    assert loop.finite_check() is loop._all_finite_in_host_memory     # this suite: one CPU process
