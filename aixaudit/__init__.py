"""aixaudit: audits a code-completion model, repository by repository, through Triton."""

__version__ = "0.1.0"
