from django.core.management.base import BaseCommand

from recorder.demo import demo_load


class Command(BaseCommand):
    help = "Load realistic demo sessions (mobile, IoT, web UI, audit) into the 'demo' application."

    def add_arguments(self, parser):
        parser.add_argument("--events", type=int, default=3000, help="events per session")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, events, seed, **options):
        counts = demo_load(events_per_session=events, seed=seed)
        for key, n in counts.items():
            self.stdout.write(f"demo session {key}: {n} events")
