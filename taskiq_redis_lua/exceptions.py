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
    """A result or progress could not be serialized.

    For a result, an error result naming this failure is stored in its place, so
    the caller's ``wait_result()`` returns it; a progress is not written.
    """

    __template__ = (
        "Cannot store the {what} of task {task_id!r} with {serializer}: {reason}"
    )
    what: str
    task_id: str
    serializer: str
    reason: str

    def __init__(self, *fields: str, **named: str) -> None:
        """Take the fields by name, or in order as :attr:`args` holds them.

        Stored in a result, the error comes back as ``cls(*args)`` (taskiq rebuilds
        stored exceptions that way, and so does pickle), so ``args`` are the fields.
        """
        if fields:
            names = ("what", "task_id", "serializer", "reason")
            named = dict(zip(names, fields, strict=True))
        super().__init__(**named)
        self.args = (self.what, self.task_id, self.serializer, self.reason)

    def __str__(self) -> str:
        """Return the message the template makes of the fields."""
        return self.__template__.format(
            what=self.what,
            task_id=self.task_id,
            serializer=self.serializer,
            reason=self.reason,
        )


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
    """A call lacks keys that the script's header names."""

    __template__ = (
        "Lua script {script} takes the keys {expected} (KEYS[1], KEYS[2], ... in its"
        " header), but the call has no {missing}"
    )
    expected: str
    missing: str


class ScriptArgCountError(ScriptError, ValueError):
    """A call passed another number of ARGV than the script's header allows."""


class ScriptReplyError(ScriptError):
    """A script refused the call: an error reply `TRL...` or a declared error code."""

    __template__ = "Lua script {script} refused the call: {code} {detail}"
    code: str
