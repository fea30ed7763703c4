"""Page routes."""

from django.urls import path

from sessions_app import views

urlpatterns = [
    path("", views.share, name="share"),
    path("sessions/", views.session_list, name="session_list"),
    path("sessions/<uuid:session_id>/", views.session_detail, name="session_detail"),
    path(
        "sessions/<uuid:session_id>/export.<str:fmt>",
        views.session_export,
        name="session_export",
    ),
]
