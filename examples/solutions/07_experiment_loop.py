exercise_run = rx.fork(run.id, from_step=2, tone="formal")
exercise_run.result(timeout=60)
