import sys

from django.conf import settings
from django.http import HttpResponse
from django.urls import path


def index(request):
    collected = bool(settings.STATIC_ROOT) and (settings.STATIC_ROOT / "hello.txt").is_file()
    return HttpResponse(f"django on python {sys.version.split()[0]}, collectstatic {'ran' if collected else 'did not run'}\n",
                        content_type="text/plain")


urlpatterns = [path("", index)]
