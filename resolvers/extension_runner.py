"""Strawberry's schema-extension runner without its per-request wrapping cost.

For every request and every lifecycle stage (operation, parse, validate, execute) Strawberry
wraps each extension's generator hook in ``contextlib.contextmanager`` afresh, which copies the
function's metadata (``functools.update_wrapper``) every time: with the gateway's eight
extensions that was about an eighth of the CPU of a cached ``{ tiers { code } }``. The wrapper
depends only on the extension's class and the stage, so it is made once per (class, stage) here
and called with the request's extension instance. Order, exception handling and the hooks
themselves are Strawberry's own: the same ``ExitStack`` entering the same context managers.
Hooks that are not generator functions (plain or async callables) still go through Strawberry's
code unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    OperationContextManager,
    ParsingContextManager,
    StreamResultContextManager,
    ValidationContextManager,
    WrappedHook,
)
from strawberry.extensions.runner import SchemaExtensionsRunner

_UNSUPPORTED = object()  # a hook kind left to Strawberry
# (extension class, hook name) -> (context manager factory taking the instance, is_async) | None | _UNSUPPORTED
_FACTORIES: dict[tuple[type, str], Any] = {}


def _factory(cls: type, hook_name: str) -> Any:
    key = (cls, hook_name)
    try:
        return _FACTORIES[key]
    except KeyError:
        pass
    hook_fn = getattr(cls, hook_name)
    entry: Any
    if hook_fn is getattr(SchemaExtension, hook_name):
        entry = None
    elif inspect.isgeneratorfunction(hook_fn):
        entry = (contextlib.contextmanager(hook_fn), False)
    elif inspect.isasyncgenfunction(hook_fn):
        entry = (contextlib.asynccontextmanager(hook_fn), True)
    else:
        entry = _UNSUPPORTED
    _FACTORIES[key] = entry
    return entry


class _CachedHooks:
    HOOK_NAME: str

    def get_hook(self, extension: SchemaExtension) -> WrappedHook | None:
        entry = _factory(type(extension), self.HOOK_NAME)
        if entry is None:
            return None
        if entry is _UNSUPPORTED:
            return super().get_hook(extension)  # type: ignore[misc, no-any-return]
        factory, is_async = entry
        return WrappedHook(extension=extension, hook=functools.partial(factory, extension), is_async=is_async)


class _Operation(_CachedHooks, OperationContextManager):
    __slots__ = ()


class _Validation(_CachedHooks, ValidationContextManager):
    __slots__ = ()


class _Parsing(_CachedHooks, ParsingContextManager):
    __slots__ = ()


class _Executing(_CachedHooks, ExecutingContextManager):
    __slots__ = ()


class _StreamResult(_CachedHooks, StreamResultContextManager):
    pass  # per event and subscription: the stage a broadcast runs once per subscriber


class CachedHookRunner(SchemaExtensionsRunner):
    """``SchemaExtensionsRunner`` with the hook wrappers made once per extension class."""

    def operation(self) -> OperationContextManager:
        return _Operation(self.extensions)

    def validation(self) -> ValidationContextManager:
        return _Validation(self.extensions)

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self.extensions)

    def executing(self) -> ExecutingContextManager:
        return _Executing(self.extensions)

    def on_stream_result(self, result: Any) -> StreamResultContextManager:
        return _StreamResult(self.extensions, result)
