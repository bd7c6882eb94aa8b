from django.db import models


class Order(models.Model):
    customer = models.CharField(max_length=100)
    quantity = models.PositiveIntegerField(default=1)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.customer} x{self.quantity}"
