import cProfile, pstats, json, os, time
from local.stack import Stack
from local.clients import EmulatorClient
from bench.table import bench_services
from bench.scale import subscribed_list
import azure.functions as func
with Stack(delivery_interval=3600, extra_settings={"AzureWebJobs.process_notifications.Disabled": "true"}) as stack:
    os.environ.update(stack.app_settings())
    services = bench_services(stack)
    _, entry = subscribed_list(services, EmulatorClient(stack.emulator_url), "prof")
    body = json.dumps({"value": [entry]}).encode()
    import function_app
    from functions.intake import sharepoint_notifications
    from local.functions_host.invocation import InvocationContext, continue_trace
    fn = sharepoint_notifications.build().get_user_function()
    class Spec: name = "x"; directory = "."
    ctx = InvocationContext(Spec, continue_trace(None))
    def call():
        req = func.HttpRequest(method="POST", url="http://x/api/notifications/sharepoint", headers={}, params={}, route_params={}, body=body)
        r = fn(req, ctx); assert r.status_code == 202, r.get_body()
    for _ in range(50): call()
    from functions.core.services import get_services
    putter = get_services().intake_storage.putter("notifications")
    q = get_services().storage.queue("notifications")
    n = 400
    t = time.perf_counter()
    for _ in range(n): call()
    per = (time.perf_counter()-t)/n*1000
    t = time.perf_counter()
    for _ in range(n): putter.put("x"*300)
    lean = (time.perf_counter()-t)/n*1000
    t = time.perf_counter()
    for _ in range(n): q.send_message("x"*300)
    bare = (time.perf_counter()-t)/n*1000
    print(f"intake fn {per:.2f} ms, lean put {lean:.2f} ms, SDK put {bare:.2f} ms")
    pr = cProfile.Profile(); pr.enable()
    for _ in range(300): call()
    pr.disable()
    st = pstats.Stats(pr); st.sort_stats("tottime").print_stats(22)
