"""What the WIT imports' errors mean: they raise `componentize_py_types.Err` whose value is one
class per variant case (`StorageError_KeyTooLarge`, ...); the SDK re-raises them as its own
exceptions with the case as `kind` (`"key-too-large"`) and a readable message."""

from componentize_py_types import Err


def kind_of(case):
    """`StorageError_KeyTooLarge` -> `"key-too-large"`."""
    name = type(case).__name__.split("_", 1)[-1]
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")


def lift(error_class, describe, f, *args):
    """Calls `f(*args)`; a WIT error becomes `error_class(kind, describe(kind, payload))`."""
    try:
        return f(*args)
    except Err as error:
        kind = kind_of(error.value)
        raise error_class(kind, describe(kind, getattr(error.value, "value", None))) from None
