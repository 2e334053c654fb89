"""API v1 paths (SPEC §6): written without a trailing slash; one with a slash answers the same."""

from django.urls import re_path

from customers import api
from customers.loyalty.api import CustomerLoyaltyApi, LoyaltyAdjustApi, LoyaltyRedeemApi
from retention_crm.api.path_ids import path_ids_checked

EXTERNAL_ID = r"(?P<external_id>[^/]+)"

urlpatterns = [
    re_path(r"^customers/?$", api.CustomerListApi.as_view(), name="customer-list"),
    re_path(rf"^customers/{EXTERNAL_ID}/?$", api.CustomerDetailApi.as_view(), name="customer-detail"),
    re_path(rf"^customers/{EXTERNAL_ID}/consents/?$", api.CustomerConsentApi.as_view(), name="customer-consents"),
    re_path(rf"^customers/{EXTERNAL_ID}/erase/?$", api.CustomerEraseApi.as_view(), name="customer-erase"),
    re_path(
        rf"^customers/{EXTERNAL_ID}/telegram-link/?$",
        api.CustomerTelegramLinkApi.as_view(),
        name="customer-telegram-link",
    ),
    re_path(rf"^customers/{EXTERNAL_ID}/loyalty/?$", CustomerLoyaltyApi.as_view(), name="customer-loyalty"),
    re_path(rf"^customers/{EXTERNAL_ID}/loyalty/redeem/?$", LoyaltyRedeemApi.as_view(), name="loyalty-redeem"),
    re_path(rf"^customers/{EXTERNAL_ID}/loyalty/adjust/?$", LoyaltyAdjustApi.as_view(), name="loyalty-adjust"),
    re_path(r"^purchases/?$", api.PurchaseCreateApi.as_view(), name="purchase-create"),
    re_path(r"^purchases/bulk/?$", api.PurchaseBulkApi.as_view(), name="purchase-bulk"),
    re_path(rf"^purchases/{EXTERNAL_ID}/refund/?$", api.PurchaseRefundApi.as_view(), name="purchase-refund"),
    re_path(rf"^carts/{EXTERNAL_ID}/?$", api.CartApi.as_view(), name="cart"),
    re_path(r"^nps/?$", api.NpsApi.as_view(), name="nps"),
]
urlpatterns = path_ids_checked(urlpatterns)  # a NUL or a lone surrogate in an id: 400
