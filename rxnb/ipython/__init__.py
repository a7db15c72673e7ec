"""The notebook layer: `%load_ext rxnb`.

- `%%live`: the cell's last line is a query call; the cell shows that query live.
- `%%ai [MODEL] [--thread T] [--into NAME] [--live] [--compare M1,M2]`: the cell is a
  prompt over the notebook's variables, answered persist-first (`_ai`).
- `%rxnb` (or `%rxnb status`): the open stores, their subscriptions and live widgets.
- Cell identity: before each cell runs, what its earlier runs created (widgets,
  subscriptions) is disposed, so re-running a cell never piles them up.
"""

from __future__ import annotations

import ast
import contextlib
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from rxnb.functions import Query
from rxnb.ipython._ai import run_cell
from rxnb.reactive import open_stores
from rxnb.widgets import current_cell, live_widgets, owners

_USAGE = (
    "%%live: the cell's last line must call an @rx.query, e.g.\n"
    "    %%live\n"
    "    messages(thread_id='t1')"
)


@magics_class
class RxnbMagics(Magics):
    @cell_magic
    def live(self, line: str, cell: str) -> Any:
        """Run the cell; its last line, a query call, is shown as a live widget."""
        try:
            tree = ast.parse(cell)
        except SyntaxError as exc:
            raise UsageError(f"%%live: the cell does not parse: {exc}") from exc
        last = tree.body[-1] if tree.body else None
        if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)):
            raise UsageError(_USAGE)
        assert self.shell is not None  # magics run inside a shell
        namespace = self.shell.user_ns
        if len(tree.body) > 1:
            setup = ast.Module(body=tree.body[:-1], type_ignores=[])
            exec(compile(setup, "<%%live>", "exec"), namespace)
        call = last.value
        function = eval(compile(ast.Expression(call.func), "<%%live>", "eval"), namespace)
        if not isinstance(function, Query):
            raise UsageError(f"{_USAGE}\n`{ast.unparse(call.func)}` is {function!r}")
        live_call = ast.Call(
            func=ast.Attribute(value=call.func, attr="live", ctx=ast.Load()),
            args=call.args,
            keywords=call.keywords,
        )
        expression = ast.fix_missing_locations(ast.Expression(live_call))
        return eval(compile(expression, "<%%live>", "eval"), namespace)

    @cell_magic
    def ai(self, line: str, cell: str) -> None:
        """A prompt, answered persist-first and shown live (`rxnb.ipython._ai`)."""
        from IPython.display import display

        assert self.shell is not None  # magics run inside a shell
        run_cell(line, cell, self.shell.user_ns, display)

    @line_magic
    def rxnb(self, line: str) -> None:
        """`%rxnb status`: open stores, subscriptions and live widgets."""
        command = line.strip() or "status"
        if command != "status":
            raise UsageError(f"%rxnb {command}: unknown; try `%rxnb status`")
        stores = open_stores()
        if not stores:
            print("rxnb: no store is open; call `store = rx.open()`")
        for store in stores:
            subs = store.subscriptions()
            print(f"rxnb store {store.url}: {len(subs)} subscription(s)")
            for sub in subs:
                print(f"  {sub!r}")
        widgets = live_widgets()
        print(f"{len(widgets)} live widget(s)")
        for widget in widgets:
            print(f"  {widget!r} version {widget.version}")


def _cell_started(*_info: object) -> None:
    run = current_cell()
    if run is not None:
        owners.started(run)


def load_ipython_extension(shell: Any) -> None:
    """`%load_ext rxnb`: register the magics and cell tracking (idempotent)."""
    shell.register_magics(RxnbMagics)
    unload_ipython_extension(shell)
    shell.events.register("pre_run_cell", _cell_started)


def unload_ipython_extension(shell: Any) -> None:
    with contextlib.suppress(ValueError):  # it was not registered
        shell.events.unregister("pre_run_cell", _cell_started)
