"""Retry policies of job activities, built from the `RetryConfig` a job carries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio.common import RetryPolicy

if TYPE_CHECKING:
    from offload.models import RetryConfig


# Failure types no retry of a job's activity heals: an input encrypted with a key the worker
# does not hold (`offload.codec.EncryptionFailureConverter` names it) fails the same way on
# every attempt, so the job is dead-lettered at once; redrive it once the key is deployed.
NON_RETRYABLE_ERROR_TYPES = ["EncryptionKeyError"]


def retry_policy(config: RetryConfig) -> RetryPolicy:
    """Exponential backoff: initial interval, coefficient, maximum interval and attempts."""
    return RetryPolicy(
        initial_interval=config.initial_interval,
        backoff_coefficient=config.backoff_coefficient,
        maximum_interval=config.maximum_interval,
        maximum_attempts=config.maximum_attempts,
        non_retryable_error_types=NON_RETRYABLE_ERROR_TYPES,
    )


def after_first_attempt(config: RetryConfig) -> RetryConfig:
    """The retry config of the attempts left once one attempt failed: same schedule, one fewer."""
    return config.model_copy(
        update={
            "initial_interval_seconds": min(
                config.initial_interval_seconds * config.backoff_coefficient,
                config.maximum_interval_seconds,
            ),
            "maximum_attempts": config.maximum_attempts - 1,
        }
    )
