from django.http import HttpResponse

from orders.models import Order


def order_list(request):
    lines = [f"{o.id}\t{o.customer}\t{o.quantity}" for o in Order.objects.order_by("id")]
    return HttpResponse("orders\n" + "\n".join(lines) + "\n", content_type="text/plain")
