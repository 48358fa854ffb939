"""One worker process of a grid (see pool): its own TensorFlow, started quietly on the study's
threads, and its own Session; it trains the runs its parent sends and reports every line,
Progress event and outcome back.

This module imports no TensorFlow itself, so that a freshly spawned worker imports it through
quiet_import, with the thread count set before TensorFlow starts.
"""

import signal
import traceback

from tltransfer import quiet_import


def work(logdir, session_settings, checkpoint_seconds, tasks, reports, stop):
    """A worker: runs configs from `tasks` until None, reporting everything to `reports`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what a Ctrl-C means
    quiet_import.tensorflow(session_settings.get("threads"))
    from tltransfer import data, experiment, loop, rundir
    from tltransfer.session import Session
    session = Session(**session_settings, stop=stop)
    loaded = {}
    while (config := tasks.get()) is not None:
        def log(line, config=config):
            reports.put(("log", config, line))

        def progress(event, config=config):
            reports.put(("progress", config, event))
        try:
            done = rundir.completed_result(config, logdir)  # by another process meanwhile
            if done is not None:
                reports.put(("complete", config, done))
                continue
            if config.data not in loaded:
                loaded[config.data] = data.load_data(config.data)
            result = experiment.run(config, logdir, log=log, mnist=loaded[config.data],
                                    wait=False, checkpoint_seconds=checkpoint_seconds,
                                    progress=progress, session=session)
            reports.put(("done", config, result))
        except rundir.Busy:
            reports.put(("busy", config, None))
        except loop.RunFailed as e:
            reports.put(("failed", config, str(e)))
        except loop.Interrupted as e:
            reports.put(("interrupted", config, str(e)))
            return
        except Exception as e:  # noqa: BLE001: the parent tells it and stops the study
            told = str(e) if isinstance(e, (rundir.RunError, ValueError, data.DataError)) else (
                traceback.format_exc())
            reports.put(("error", config, told))
            return
        session.between_runs()
