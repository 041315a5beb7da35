"""Creates the events table and fraiseql_publish() ahead of the application, e.g. in a
migration run by a role that may create tables (the application's role then need not).

python install.py postgresql://migrator@127.0.0.1/app
"""

import asyncio
import sys

from fraiseql_fastapi import EventBusConfig, SubscriptionManager


async def install(database_url: str) -> None:
    bus = EventBusConfig.postgresql(database_url)  # the application's channel_prefix, if any
    manager = SubscriptionManager(bus, subscriptions=[])  # it only installs
    await manager.install_sql()  # idempotent: a schema already up to date is left alone


if __name__ == "__main__":
    asyncio.run(install(sys.argv[1]))
