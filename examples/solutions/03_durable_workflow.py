@rx.workflow
def onboard(ctx: rx.WorkflowContext, user: str) -> str:
    ctx.step(send_welcome, user)
    confirmed = ctx.wait_for_event("confirmed", timeout=datetime.timedelta(minutes=1))
    if confirmed is None:
        return f"{user} timed out"
    return f"{user} confirmed"
