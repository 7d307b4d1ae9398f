/*
 * vx_metrics.h - Prometheus metrics: counters, gauges, histograms.
 *
 * A registry owns its series; a series is a name plus a fixed label set
 * (e.g. `route="/detect",code="200"`). Series with the same name share one
 * HELP/TYPE block. Registration takes the registry lock (do it at start or
 * rarely); updates are lock-free atomics and safe from any thread. A series
 * lives as long as its registry. vx_metrics_render writes the text format
 * (version 0.0.4).
 *
 *     vx_counter *c = vx_metrics_counter(m, "voxline_rejected_total", "...", NULL);
 *     vx_counter_add(c, 1);
 *     vx_metrics_render(m, &buf);
 */
#ifndef VX_METRICS_H
#define VX_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "vx_buf.h"

typedef struct vx_metrics vx_metrics;
typedef struct vx_series vx_counter;
typedef struct vx_series vx_gauge;   /* read through a callback */
typedef struct vx_series vx_histogram;

int vx_metrics_new(vx_metrics **ret);
void vx_metrics_free(vx_metrics *m);

/* labels: `a="x",b="y"` without braces, or NULL. Registering the same name
 * and labels twice returns the existing series. NULL on ENOMEM: updates on
 * a NULL series are no-ops, so callers need not check. */
vx_counter *vx_metrics_counter(vx_metrics *m, const char *name,
			       const char *help, const char *labels);
/* A gauge read by calling fn(arg) at render time. */
vx_gauge *vx_metrics_gauge_fn(vx_metrics *m, const char *name,
			      const char *help, const char *labels,
			      double (*fn)(void *arg), void *arg);
/* bounds: ascending upper bounds (+Inf is implied), at most 24. */
vx_histogram *vx_metrics_histogram(vx_metrics *m, const char *name,
				   const char *help, const char *labels,
				   const double *bounds, size_t n_bounds);

/* Bucket bounds for latencies in seconds, 1 ms .. 30 s. */
extern const double vx_latency_buckets[];
extern const size_t vx_latency_buckets_n;

void vx_counter_add(vx_counter *c, uint64_t n);
void vx_histogram_observe(vx_histogram *h, double v);

int vx_metrics_render(vx_metrics *m, vx_buf *out);

#endif
