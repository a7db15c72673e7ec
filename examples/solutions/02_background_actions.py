@rx.action
def count_to(ctx: rx.ActionContext, n: int) -> int:
    reached = 0
    for i in range(1, n + 1):
        if ctx.wait(0.05):  # True once the run is cancelled
            break
        reached = i
        ctx.progress(i, n)
    return reached
