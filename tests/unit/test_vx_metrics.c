/* Unit tests for common/vx_metrics.c: Prometheus text output. */
#include "../../common/vx_metrics.h"
#include "vx_test.h"

static double forty_two(void *arg)
{
	(void)arg;
	return 42;
}

VX_TEST(series_of_one_name_share_help_and_render_values)
{
	vx_metrics *m;
	VX_CHECK_INT(vx_metrics_new(&m), 0);
	vx_counter *a = vx_metrics_counter(m, "x_total", "things", "k=\"a\"");
	vx_metrics_gauge_fn(m, "g", "a gauge", NULL, forty_two, NULL);
	vx_counter *b = vx_metrics_counter(m, "x_total", "things", "k=\"b\"");
	VX_CHECK(vx_metrics_counter(m, "x_total", "things", "k=\"a\"") == a);
	vx_counter_add(a, 2);
	vx_counter_add(b, 5);
	vx_counter_add(NULL, 1);   /* no-op */
	vx_buf out = {0};
	VX_CHECK_INT(vx_metrics_render(m, &out), 0);
	VX_CHECK(strstr(out.data, "# TYPE x_total counter\nx_total{k=\"a\"} 2\n"
			"x_total{k=\"b\"} 5\n") != NULL);
	VX_CHECK(strstr(out.data, "# TYPE g gauge\ng 42\n") != NULL);
	vx_buf_release(&out);
	vx_metrics_free(m);
}

VX_TEST(histogram_buckets_are_cumulative)
{
	vx_metrics *m;
	vx_metrics_new(&m);
	const double bounds[] = { 0.1, 1 };
	vx_histogram *h = vx_metrics_histogram(m, "lat", "latency", "r=\"/x\"",
					       bounds, 2);
	vx_histogram_observe(h, 0.05);
	vx_histogram_observe(h, 0.5);
	vx_histogram_observe(h, 5);
	vx_buf out = {0};
	vx_metrics_render(m, &out);
	VX_CHECK(strstr(out.data, "lat_bucket{r=\"/x\",le=\"0.1\"} 1\n") != NULL);
	VX_CHECK(strstr(out.data, "lat_bucket{r=\"/x\",le=\"1\"} 2\n") != NULL);
	VX_CHECK(strstr(out.data, "lat_bucket{r=\"/x\",le=\"+Inf\"} 3\n") != NULL);
	VX_CHECK(strstr(out.data, "lat_count{r=\"/x\"} 3\n") != NULL);
	VX_CHECK(strstr(out.data, "lat_sum{r=\"/x\"} 5.55\n") != NULL);
	vx_buf_release(&out);
	vx_metrics_free(m);
}

VX_TEST_MAIN(series_of_one_name_share_help_and_render_values,
	     histogram_buckets_are_cumulative)
