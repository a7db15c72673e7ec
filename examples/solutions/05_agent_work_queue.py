@rx.mutation
def requeue_failed(db: rx.Writer) -> int:
    failed = db.exec(select(q.Task).where(q.Task.status == "failed")).all()
    for task in failed:
        task.status, task.worker, task.result = "open", None, None
        db.add(q.TaskLog(task_id=task.id, event="requeued"))
    return len(failed)
