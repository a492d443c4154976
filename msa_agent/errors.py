"""Named exceptions of the library. Only the CLI turns them into a message and an exit code."""


class MSAError(Exception):
    """Base of every error msa reports to a user in one line."""


class StoreNotFound(MSAError):
    """No store at the given path."""


class FingerprintMismatch(MSAError):
    """The store was built with another model; re-ingest with --reencode."""


class StoreCorrupt(MSAError):
    """A segment or row failed its checks."""


class StoreLocked(MSAError):
    """Another process holds the store's write lock."""


class BadInput(MSAError):
    """An argument or input file that msa cannot use."""
