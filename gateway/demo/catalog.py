"""Demo points mall: a realistic catalog so GraphiQL's `gifts` shows something at once.

Pure-points and points + cash gifts, tier-gated ones, one per-member limit, one
scheduled listing, one sold out and one flash offer. Fixed ids make it safe to run twice.
"""

from __future__ import annotations

from datetime import timedelta

from gateway.domain.calendar import Period
from gateway.domain.catalog import Limits
from gateway.features.catalog import GiftSpec
from gateway.services import Services
from gateway.store import gifts
from gateway.store.program import load_program

CDN = "https://img.example.com/mall/"

# id, spec, stock
DEMO_GIFTS: list[tuple[str, GiftSpec, int]] = [
    (
        "demo-gift-tote",
        GiftSpec(
            name="米马帆布袋 Mima canvas tote",
            category="lifestyle",
            cost_price=2_500,
            points=300,
            description="Heavy cotton tote with the Mima logo.",
            image_url=CDN + "tote.jpg",
        ),
        200,
    ),
    (
        "demo-gift-thermos",
        GiftSpec(
            name="保温杯 Thermos cup 500 ml",
            category="lifestyle",
            cost_price=6_800,
            points=600,
            description="Stainless steel, keeps tea hot for 12 hours.",
            image_url=CDN + "thermos.jpg",
        ),
        80,
    ),
    (
        "demo-gift-coffee",
        GiftSpec(
            name="咖啡券 ¥50 coffee voucher",
            category="vouchers",
            cost_price=5_000,
            points=500,
            description="One voucher per member per month.",
            image_url=CDN + "coffee.jpg",
            limits=Limits(per_member=1, period=Period.MONTH, per_order=1),
        ),
        500,
    ),
    (
        "demo-gift-powerbank",
        GiftSpec(
            name="充电宝 Power bank 10000 mAh",
            category="electronics",
            cost_price=9_900,
            points=800,
            cash=2_000,
            description="800 points + ¥20.",
            image_url=CDN + "powerbank.jpg",
        ),
        50,
    ),
    (
        "demo-gift-iphone",
        GiftSpec(
            name="Apple iPhone 6 (积分兑换)",
            category="electronics",
            cost_price=320_000,
            points=1_500,
            description="Seed 004's example: ¥3,200 for 1,500 points costs ¥2.133 a point.",
            image_url=CDN + "iphone6.jpg",
            min_tier="VIP",
        ),
        3,
    ),
    (
        "demo-gift-iphone-cash",
        GiftSpec(
            name="Apple iPhone 6 (积分+现金)",
            category="electronics",
            cost_price=320_000,
            points=1_500,
            cash=30_000,
            description="1,500 points + ¥300: ¥1.933 a point.",
            image_url=CDN + "iphone6.jpg",
            min_tier="VIP",
        ),
        3,
    ),
    (
        "demo-gift-tea",
        GiftSpec(
            name="至尊茶礼盒 Supreme tea gift box",
            category="food",
            cost_price=38_000,
            points=2_000,
            description="Only for Supreme VIP members.",
            image_url=CDN + "tea.jpg",
            min_tier="SUPREME_VIP",
        ),
        20,
    ),
    (
        "demo-gift-plush",
        GiftSpec(
            name="限量公仔 Limited plush toy",
            category="lifestyle",
            cost_price=4_000,
            points=400,
            description="Sold out; restock it to put it back on sale.",
            image_url=CDN + "plush.jpg",
        ),
        0,
    ),
]
SCHEDULED_ID = "demo-gift-mooncakes"
FLASH_ID = "demo-gift-thermos"


async def seed_demo_catalog(services: Services) -> str:
    """Create the demo gifts that are missing; existing ones are left as the operator left them."""
    catalog = services.catalog
    program = await load_program(services.db)
    now = services.clock.now()
    existing = await gifts.ids_starting(services.db, "demo-gift-")
    scheduled = GiftSpec(
        name="中秋月饼礼盒 Mid-Autumn mooncake box",
        category="food",
        cost_price=12_800,
        points=1_000,
        description="Scheduled listing (定时上架): on sale in three days, for two weeks.",
        image_url=CDN + "mooncakes.jpg",
        list_from=now + timedelta(days=3),
        list_until=now + timedelta(days=17),
    )
    created = 0
    for gift_id, spec, stock in [*DEMO_GIFTS, (SCHEDULED_ID, scheduled, 100)]:
        if gift_id in existing:
            continue
        await catalog.create(spec, stock, program, gift_id=gift_id)
        created += 1
        if gift_id == FLASH_ID:
            await catalog.set_offer(gift_id, 400, now - timedelta(hours=1), now + timedelta(days=2))
    return f"demo catalog: {created} gifts created"
