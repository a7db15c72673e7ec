"""Argument checking from type hints, before anything runs."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from rxnb.errors import ArgumentError, FunctionError


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _resolve(annotation: Any, fn: Callable[..., Any]) -> Any:
    """A parameter's type hint; a string hint is evaluated in the function's globals."""
    if annotation is inspect.Parameter.empty:
        return Any
    if isinstance(annotation, str):
        try:
            return eval(annotation, getattr(fn, "__globals__", {}))
        except Exception:
            return Any  # defined later, or not a type: accept anything rather than fail
    return annotation


class ArgumentSpec:
    """The parameters of a user function after its first (the session).

    Responsibilities: bind call arguments by name or position, fill defaults, and
    validate each value against its hint, raising ArgumentError that names the
    argument, the value, and the type expected.
    """

    def __init__(self, fn: Callable[..., Any], label: str) -> None:
        self.label = label
        signature = inspect.signature(fn)
        params = list(signature.parameters.values())
        if not params or params[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise FunctionError(
                f"{label} must take the store session as its first parameter, e.g. "
                f"`def {fn.__name__}(db: rx.Reader, ...)` for a query or "
                f"`def {fn.__name__}(db: rx.Writer, ...)` for a mutation"
            )
        self.signature = signature.replace(parameters=params[1:])
        self._adapters: dict[str, tuple[Any, TypeAdapter[Any]]] = {}
        for param in params[1:]:
            if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                continue
            hint = _resolve(param.annotation, fn)
            try:
                adapter: TypeAdapter[Any] = TypeAdapter(hint)
            except Exception as exc:
                raise FunctionError(
                    f"{label}: parameter `{param.name}` has a type hint pydantic cannot check "
                    f"({_describe(hint)}: {exc}); use a plain type such as str, int or a model"
                ) from exc
            self._adapters[param.name] = (hint, adapter)

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Call arguments as a checked dict of name to value."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ArgumentError(
                f"{self.label}{self.signature}: {exc}; call it with keyword arguments, "
                "e.g. " + _example(self.signature)
            ) from None
        bound.apply_defaults()
        return self.check(bound.arguments)

    def check(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Validate named arguments (missing or unknown names included)."""
        missing = [
            name
            for name, p in self.signature.parameters.items()
            if name not in arguments
            and p.default is inspect.Parameter.empty
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        ]
        if missing:
            raise ArgumentError(
                f"{self.label}{self.signature} is missing argument(s) "
                f"{', '.join(f'`{m}`' for m in missing)}; e.g. {_example(self.signature)}"
            )
        accepts_any = any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in self.signature.parameters.values()
        )
        checked: dict[str, Any] = {}
        for name, value in arguments.items():
            if name not in self._adapters:
                if accepts_any or name in self.signature.parameters:
                    checked[name] = value
                    continue
                raise ArgumentError(
                    f"{self.label}{self.signature} got an unexpected argument `{name}`="
                    f"{value!r}; it takes {', '.join(self.signature.parameters) or 'none'}"
                )
            hint, adapter = self._adapters[name]
            param = self.signature.parameters[name]
            if param.default is not inspect.Parameter.empty and value is param.default:
                checked[name] = value
                continue
            try:
                checked[name] = adapter.validate_python(value)
            except ValidationError as exc:
                reason = exc.errors()[0]["msg"] if exc.errors() else str(exc)
                raise ArgumentError(
                    f"{self.label}: argument `{name}` got {value!r} "
                    f"({type(value).__name__}), expected {_describe(hint)} ({reason}); "
                    f"pass a {_describe(hint)}"
                ) from None
        return checked


def _example(signature: inspect.Signature) -> str:
    names = [
        f"{n}=..."
        for n, p in signature.parameters.items()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    return f"f({', '.join(names)})"
