"""The exceptions users see; each message is one clear sentence.

AixauditError
├── SourceError          a path or git URL that cannot be read
├── ConfigError          a setting that makes no sense
├── SchemaError          the database's schema is not this code's (behind, ahead, broken)
├── ServerError          the Triton server or model is not usable
│   ├── ServerStartError the bundled tritonserver did not come up
│   └── ModelOutputError an answer that is no completion (stored as the point's error)
├── ModelWeightsError    the CPU model's weights are missing or broken
├── RunNotFound          a run id that is not in the database
├── RepositoryNotFound   a repository id that is not in the database
├── ComparisonError      two runs that cannot be compared (no shared points, too few)
└── ExecutionError       tests cannot be run safely here (no sandbox)
"""

from __future__ import annotations


class AixauditError(Exception):
    """Base of every error aixaudit raises on purpose."""


class SourceError(AixauditError):
    """The repository cannot be read or cloned."""


class ConfigError(AixauditError):
    """A setting or option is invalid."""


class SchemaError(AixauditError):
    """The database is at another schema revision than this code, or a migration failed."""


class ServerError(AixauditError):
    """The Triton server, or the model on it, cannot serve our requests."""


class ServerStartError(ServerError):
    """The bundled tritonserver did not become ready."""


class ModelOutputError(ServerError):
    """The model answered with something that is not one completion in UTF-8."""


class ModelWeightsError(AixauditError):
    """The CPU model's weights cannot be found or converted."""


class RunNotFound(AixauditError):
    """No run with that id."""


class RepositoryNotFound(AixauditError):
    """No repository with that id."""


class ComparisonError(AixauditError):
    """Two runs share too few points to compare."""


class ExecutionError(AixauditError):
    """A repository's tests cannot be run safely here (no sandbox, a change outside the copy)."""
