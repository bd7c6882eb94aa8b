from django.urls import include, path

from config import views

urlpatterns = [
    path("cynow/", views.home, name="home"),
    path("cynow/orders/", include("orders.urls")),
]
