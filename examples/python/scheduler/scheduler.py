"""Cloudflare's example Scheduler in Python: a request sets the alarm 60 s ahead; the alarm
deletes "expired-data" and reschedules itself."""

import time

from duro import DurableObject, Response


def now_ms():
    return int(time.time() * 1000)


class Scheduler(DurableObject):
    def fetch(self, request):
        # Set alarm to fire in 60 seconds
        self.ctx.storage.set_alarm(now_ms() + 60_000)
        return Response.json({"scheduled": True})

    def alarm(self, info):
        # Do scheduled work
        self.ctx.storage.delete("expired-data")
        # Optionally reschedule
        self.ctx.storage.set_alarm(now_ms() + 60_000)
