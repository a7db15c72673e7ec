"""`@rx.tool`: a function an agent may call, described to the model by its name,
docstring and type hints.

Rules for a call (`Tool.call`):

1. The arguments the model sent are JSON text; they are parsed and validated against
   the function's type hints (pydantic). Text that is not JSON, a missing or unknown
   argument or a value of the wrong type is an `ToolInputError` naming it: the model
   is told, as the call's error, and may call again.
2. A plain function runs in the turn's step thread; an `@rx.query` or `@rx.mutation`
   runs against the store with its own semantics (a read; a serializable
   transaction). An `@rx.action`, `@rx.workflow` or another agent (`agent.as_tool()`)
   runs as a child run of the turn (`Tool.runs_as_child`).
3. A result is sent to the model as text: a str as it is, anything else as JSON. A
   stored file returned (`rx.File`, or a list of them, e.g. `return
   rx.files.get(rx.files.put(png))`) is also a file of the call's message, shown in
   the chat; the model is told its id, name, content type and size. A child run's
   result comes back as JSON: it is read as `rx.File` rows when its function is
   declared to return them (`-> rx.File`, `-> list[rx.File]`).
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Callable
from typing import Any, NamedTuple

import pydantic

from rxnb.errors import ArgumentError, FunctionError, RxnbError
from rxnb.execution import Action, File
from rxnb.functions import Mutation, Query, StoreFunction
from rxnb.reactive import Store, to_jsonable

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolInputError(RxnbError):
    """The model called a tool with arguments it does not take (rule 1)."""


class Tool:
    """A function an agent may call (see the module docstring).

    `name`, `description` and `parameters` (a JSON schema) are what the model sees;
    `approval=True` makes each call wait for a person (`rx.agents.approve`).
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        approval: bool = False,
    ) -> None:
        if isinstance(fn, Tool):
            raise FunctionError(f"{fn!r} is a tool already; pass it to tools= as it is")
        if not callable(fn):
            raise FunctionError(
                f"@rx.tool decorates a function, not {type(fn).__name__} ({fn!r:.60})"
            )
        if not isinstance(approval, bool):
            raise FunctionError(f"@rx.tool(approval={approval!r}): pass True or False")
        target = fn.fn if isinstance(fn, StoreFunction) else fn
        self.fn = fn
        self.name = name if name is not None else getattr(target, "__name__", "")
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise FunctionError(
                f"tool name {self.name!r}: models accept 1-64 letters, digits, _ and -; "
                "pass @rx.tool(name='...')"
            )
        doc = description if description is not None else inspect.getdoc(target) or ""
        self.description = doc.strip() or self.name
        self.approval = approval
        skip = 1 if isinstance(fn, StoreFunction) else 0  # db / ctx
        self._model = _arguments_model(target, self.name, skip)
        self.parameters: dict[str, Any] = self._model.model_json_schema()
        self.parameters.pop("title", None)

    @property
    def runs_as_child(self) -> bool:
        """Rule 2: an action, a workflow or an agent runs as a child run of the turn."""
        return isinstance(self.fn, Action) or getattr(self.fn, "rx_agent", None) is not None

    def schema(self) -> dict[str, Any]:
        """The tool as litellm (OpenAI's format) takes it in `tools=`."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def arguments(self, text: str) -> dict[str, Any]:
        """Rule 1: the model's JSON text as checked keyword arguments."""
        try:
            raw = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise ToolInputError(
                f"the arguments of {self.name} are not JSON ({exc}); send a JSON object"
            ) from None
        if not isinstance(raw, dict):
            raise ToolInputError(
                f"the arguments of {self.name} must be a JSON object, not {type(raw).__name__}"
            )
        try:
            checked = self._model.model_validate(raw)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ToolInputError(f"{self.name} was called with bad arguments: {problems}") from None
        return {name: getattr(checked, name) for name in type(checked).model_fields}

    def call(self, store: Store, arguments: dict[str, Any]) -> ToolResult:
        """Rules 2-3, for a tool that does not run as a child run."""
        fn = self.fn
        if isinstance(fn, Query | Mutation):
            value = fn.call_on(store, **arguments)
        else:
            value = fn(**arguments)
        return result_of(value)

    def __repr__(self) -> str:
        return f"<rx.tool {self.name}{' (approval)' if self.approval else ''}>"


class ToolResult(NamedTuple):
    """Rule 3: a call's result as the model is told it, and the ids of the files it
    returned."""

    text: str
    files: list[str]


def result_of(value: Any) -> ToolResult:
    """Rule 3: a call's result, with the files it returned (an `rx.File`, or a
    non-empty list of them)."""
    found = [value] if isinstance(value, File) else value
    if isinstance(found, list | tuple) and found and all(isinstance(f, File) for f in found):
        described = [
            {"file_id": f.id, "name": f.name, "content_type": f.content_type, "size": f.size}
            for f in found
        ]
        shown = described[0] if isinstance(value, File) else described
        return ToolResult(json.dumps(shown, ensure_ascii=False), [f.id for f in found])
    return ToolResult(result_text(value), [])


def declared_files(fn: Callable[..., Any], value: Any) -> Any:
    """Rule 3: a child run's JSON result as `rx.File` rows, when `fn` declares it
    returns them; else as it is."""
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:  # an annotation that does not resolve: the result as it is
        return value
    if hint is File and isinstance(value, dict):
        return File.model_validate(value)
    listed = typing.get_origin(hint) in (list, tuple) and typing.get_args(hint)[:1] == (File,)
    if listed and isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return [File.model_validate(v) for v in value]
    return value


def result_text(value: Any) -> str:
    """Rule 3: what the model is told a call returned."""
    if isinstance(value, str):
        return value
    return json.dumps(to_jsonable(value, where="the tool's result"), ensure_ascii=False)


def _arguments_model(fn: Callable[..., Any], name: str, skip: int) -> type[pydantic.BaseModel]:
    """A pydantic model of `fn`'s parameters (after the first `skip`), from its hints."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise FunctionError(f"tool {name}: its signature cannot be read ({exc})") from None
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve: it is taken as Any
        hints = {}
    fields: dict[str, Any] = {}
    for parameter in list(signature.parameters.values())[skip:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise FunctionError(
                f"tool {name}: *{parameter.name} cannot be described to a model; name each argument"
            )
        hint = hints.get(parameter.name, Any)
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (hint, default)
    try:
        return pydantic.create_model(f"{name}_arguments", **fields)
    except Exception as exc:
        raise FunctionError(
            f"tool {name}: its type hints cannot be turned into a schema ({exc}); use JSON "
            "types, pydantic models or dataclasses"
        ) from None


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    approval: bool = False,
) -> Any:
    """Declare a tool for agents: `@rx.tool` or `@rx.tool(approval=True)`.

    The function's name, docstring and type hints are what the model sees. It may also
    be an `@rx.query`, `@rx.mutation`, `@rx.action` or `@rx.workflow` (each runs with
    its own semantics). `approval=True`: each call waits for `rx.agents.approve`.
    """

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, description=description, approval=approval)

    return wrap(fn) if fn is not None else wrap


def as_tools(tools: Any) -> list[Tool]:
    """`tools=` as a list of `Tool` (plain functions are wrapped), names unique."""
    if isinstance(tools, Tool) or callable(tools) or isinstance(tools, str | bytes):
        raise ArgumentError(
            f"tools= takes a list of tools, not {tools!r:.60}; pass [{tools!r:.40}]"
        )
    out = [t if isinstance(t, Tool) else Tool(t) for t in tools or ()]
    names = [t.name for t in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ArgumentError(
            f"two tools are named {', '.join(twice)}; give one another name with "
            "@rx.tool(name='...')"
        )
    return out
