import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flightrec_site.settings")
application = get_wsgi_application()

# A worker that cannot load refuses to boot, and gunicorn stops with the message,
# instead of answering every request with a 500 from a damaged database.
from recorder.startup import refuse_damaged_databases  # noqa: E402

refuse_damaged_databases()
