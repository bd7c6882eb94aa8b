from django.http import HttpResponse

from orders.models import Order


def home(request):
    # Touches the database so that a broken database shows on the front page.
    return HttpResponse(f"CYNOW ok: {Order.objects.count()} orders\n", content_type="text/plain")
