from bench.__main__ import bench_intake
from bench.table import bench_services, render
from local.stack import Stack
with Stack(delivery_interval=3600, extra_settings={"AzureWebJobs.process_notifications.Disabled": "true", "AzureWebJobs.renew_subscriptions.Disabled": "true"}) as stack:
    print(render(bench_intake(stack, bench_services(stack), 300)))
