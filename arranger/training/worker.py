"""One training worker of ``lofi train --nproc N``: ``python -m arranger.training.worker JOB``.

Started by the elastic launcher (:func:`arranger.training.distributed.launch`), which sets the
rank variables; ``JOB`` is the folder of the encoded job. Bad input is one line and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from arranger.training import distributed
from arranger.training.encoded import load_job


def main(argv: list[str]) -> int:
    """Train the job in ``argv[0]`` as the worker the environment names; the exit code."""
    from arranger.training.run import train_job, writing

    job = load_job(Path(argv[0]))
    try:
        with writing(job.out):
            train_job(job, distributed.current())
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except distributed.WorkersFailed as e:  # the launcher reports the run's failure
        print(e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
