"""Why a release was refused. Messages name tables, columns and kinds of cells, never a value."""


class PublicationError(RuntimeError):
    """The release cannot be published: a column is not classified, or the auditor recovered a hidden count."""
