"""gunicorn settings for the ceilings of bench/http.py (the bare app and the framework's
floor): gunicorn's threaded worker, taking new connections in turn as `pie serve`'s workers
do (pie/accept_balance.py). Left to the race for the listening socket, wrk's 8 keep-alive
connections all landed on one of two workers in some rounds, on either side, which then ran
at about 40% of its rate: a round's ratio measured that luck, not the apps.

    gunicorn -c python:bench.gunicorn_balanced -w 2 --threads 4 -b ADDRESS APP"""

from __future__ import annotations

from gunicorn.workers.gthread import ThreadWorker

from pie.accept_balance import BalancedAccept, Board, close_when_crowded, give_slot


class BalancedThreadWorker(BalancedAccept, ThreadWorker):
    """gunicorn's gthread worker, nothing else of `pie serve`'s."""


BalancedThreadWorker.board = Board()  # here, in the master, before it forks the workers
worker_class = BalancedThreadWorker
pre_fork = give_slot
pre_request = close_when_crowded
