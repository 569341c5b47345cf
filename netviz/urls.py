from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic.base import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico on pages that name no icon (raw SVG, JSON).
    path("favicon.ico", RedirectView.as_view(url=static("netviz/favicon.svg"), permanent=True)),
    path("", include("netviz.web.urls")),
]
