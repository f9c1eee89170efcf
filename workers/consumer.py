"""Celery's consumer, except that a lost broker connection is collected, not also closed.

Celery 5.7 handles a lost connection by collecting it (`Connection.collect()`, which detaches
kombu's transport) and then closing it (`Connection.close()`). With the Redis transport and late
acks that kills the worker. collect() tries to close the channel, but if the consumer was
waiting on Redis for its next message (BRPOP) that close fails at its first read and is
ignored; close() then goes on to give back the messages of the jobs still running, over the
detached transport, and raises AttributeError (kombu's `Channel._connparams` reads
`connection.client`, None by then). That is no connection error, so Celery takes it for a bug
and the process exits. Catching it is not enough: the channel's pool is gone by then, and
acknowledging those jobs' messages when they end raises the same error in the event loop
(tried). In the chaos suite a Redis restart killed one or both workers in most runs, and the
jobs queued once Redis was back waited for a new worker (tests/faults/test_broker_restart.py).

So a lost connection is only collected, as earlier Celery releases did. Its channel keeps a
connection pool, through which the running jobs' messages are acknowledged once Redis answers
again (a message that cannot be is logged by Celery and, if Redis still holds it, redelivered:
the job's compare-and-set claim makes that harmless, DESIGN §6.4). Celery's reconnect then
opens a new connection as usual. Not kept from Celery's handler:
worker_cancel_long_running_tasks_on_connection_loss, which Tether does not set (a broker gone
for a moment must not cut the model calls running).
"""

import logging
from typing import Any

from celery.utils.threads import bound_open_broker_sockets
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.consumer.consumer import COLLECT_SOCKET_TIMEOUT, CONNECTION_RETRY

log = logging.getLogger(__name__)


class Consumer(CeleryConsumer):  # type: ignore[misc]  # Celery has no type hints
    connection: Any  # kombu's Connection to the broker; None while there is none

    def on_connection_error_after_connected(self, exc: BaseException) -> None:
        log.warning("%s (%r)", CONNECTION_RETRY, exc)
        lost, self.connection = self.connection, None
        if lost is None:
            return
        # A socket of the lost connection may not answer at all (a broker host gone, not a
        # broker process): collecting it reads from it, so the wait is bounded.
        bound_open_broker_sockets(lost, COLLECT_SOCKET_TIMEOUT)
        try:
            lost.collect(socket_timeout=COLLECT_SOCKET_TIMEOUT)
        except Exception as error:  # the connection is gone either way; a new one is made next
            log.info("collecting the lost broker connection failed: %r", error)
