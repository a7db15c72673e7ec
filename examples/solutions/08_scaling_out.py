with open("my_tasks.py", "w") as module:
    module.write('''
import os

import rxnb as rx


@rx.action
def shout(ctx: rx.ActionContext, text: str) -> dict:
    return {"text": text.upper(), "pid": os.getpid()}
''')
extra = start_worker("my_tasks")
