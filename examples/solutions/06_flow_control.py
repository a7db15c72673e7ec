rx.Queue("exercise", concurrency=1, rate=(4, 1.0))
