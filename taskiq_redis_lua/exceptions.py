"""Exceptions: taskiq-redis's names and hierarchy, plus our own subclasses."""

from taskiq.exceptions import ResultBackendError, ResultGetError, TaskiqError


class TaskIQRedisError(TaskiqError):
    """Base error for all taskiq-redis-lua exceptions."""


class DuplicateExpireTimeSelectedError(ResultBackendError, TaskIQRedisError):
    """Both result_ex_time and result_px_time were given."""

    __template__ = "Choose either result_ex_time or result_px_time."


class ExpireTimeMustBeMoreThanZeroError(ResultBackendError, TaskIQRedisError):
    """An expiry time was zero or negative."""

    __template__ = (
        "You must select one expire time param and it must be more than zero."
    )


class ResultIsMissingError(TaskIQRedisError, ResultGetError):
    """There is no result for the task (not ready, expired, or already taken)."""


class ResultSerializationError(ResultBackendError, TaskIQRedisError):
    """A result or progress could not be serialized; nothing was written."""

    __template__ = (
        "Cannot store the {what} of task {task_id!r} with {serializer}: {reason}"
    )
    what: str
    task_id: str
    serializer: str
    reason: str


class ResultDecodeError(ResultGetError, TaskIQRedisError):
    """Data stored for a task could not be decoded by the configured serializer."""

    __template__ = (
        "Cannot decode the {what} of task {task_id!r} with {serializer}: {reason}"
    )
    what: str
    task_id: str
    serializer: str
    reason: str


class ScriptError(TaskIQRedisError):
    """Base class for problems with the Lua scripts."""

    __template__ = "Lua script {script}: {detail}"
    script: str
    detail: str = ""


class ScriptHeaderError(ScriptError):
    """A script file does not carry the header the registry reads."""


class ScriptKeyCountError(ScriptError, ValueError):
    """A call passed another number of keys than the script's header declares."""

    __template__ = (
        "Lua script {script} takes {expected} key(s) (KEYS[1]..KEYS[{expected}] in its"
        " header), but the call passed {given}"
    )
    expected: int
    given: int


class ScriptReplyError(ScriptError):
    """A script refused the call: an error reply `TRL...` or a declared error code."""

    __template__ = "Lua script {script} refused the call: {code} {detail}"
    code: str
