import sys
from bench.__main__ import bench_intake
from bench.scale import bench_intake_load
from bench.table import bench_services, render
from local.stack import Stack
with Stack(delivery_interval=3600, extra_settings={"AzureWebJobs.process_notifications.Disabled": "true", "AzureWebJobs.renew_subscriptions.Disabled": "true"}) as stack:
    s = bench_services(stack)
    rows = bench_intake(stack, s, 200) + bench_intake_load(stack, s)
print(render(rows))
