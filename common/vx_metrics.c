/* vx_metrics.c - Prometheus registry; see vx_metrics.h. */
#include "vx_metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BUCKETS 24

enum series_kind { KIND_COUNTER, KIND_GAUGE_FN, KIND_HISTOGRAM };

struct vx_series {
	struct vx_series *next;
	enum series_kind kind;
	char *name, *help, *labels;
	_Atomic uint64_t count;              /* counter value / histogram count */
	_Atomic double value;                /* histogram sum */
	double (*fn)(void *arg);
	void *fn_arg;
	size_t n_bounds;
	double bounds[MAX_BUCKETS];
	_Atomic uint64_t buckets[MAX_BUCKETS];   /* non-cumulative */
};

struct vx_metrics {
	pthread_mutex_t lock;
	struct vx_series *head, *tail;
};

const double vx_latency_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
				      0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };
const size_t vx_latency_buckets_n =
	sizeof(vx_latency_buckets) / sizeof(vx_latency_buckets[0]);

int vx_metrics_new(vx_metrics **ret)
{
	vx_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	*ret = m;
	return 0;
}

void vx_metrics_free(vx_metrics *m)
{
	if (!m)
		return;
	struct vx_series *s = m->head;
	while (s) {
		struct vx_series *next = s->next;
		free(s->name);
		free(s->help);
		free(s->labels);
		free(s);
		s = next;
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static struct vx_series *series_add(vx_metrics *m, enum series_kind kind,
				    const char *name, const char *help,
				    const char *labels)
{
	if (!m)
		return NULL;
	if (labels && !*labels)
		labels = NULL;
	pthread_mutex_lock(&m->lock);
	struct vx_series *s, *last_same = NULL;
	for (s = m->head; s; s = s->next) {
		if (strcmp(s->name, name) != 0)
			continue;
		if (same_str(s->labels, labels))
			goto out_unlock;
		last_same = s;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto out_unlock;
	s->kind = kind;
	s->name = strdup(name);
	s->help = strdup(help ? help : "");
	s->labels = labels ? strdup(labels) : NULL;
	if (!s->name || !s->help || (labels && !s->labels)) {
		free(s->name);
		free(s->help);
		free(s->labels);
		free(s);
		s = NULL;
		goto out_unlock;
	}
	/* Keep series of one name together so HELP/TYPE is written once. */
	if (last_same) {
		s->next = last_same->next;
		last_same->next = s;
		if (m->tail == last_same)
			m->tail = s;
	} else {
		if (m->tail)
			m->tail->next = s;
		else
			m->head = s;
		m->tail = s;
	}
out_unlock:
	pthread_mutex_unlock(&m->lock);
	return s;
}

vx_counter *vx_metrics_counter(vx_metrics *m, const char *name,
			       const char *help, const char *labels)
{
	return series_add(m, KIND_COUNTER, name, help, labels);
}

vx_gauge *vx_metrics_gauge_fn(vx_metrics *m, const char *name,
			      const char *help, const char *labels,
			      double (*fn)(void *arg), void *arg)
{
	struct vx_series *s = series_add(m, KIND_GAUGE_FN, name, help, labels);
	if (s) {
		s->fn = fn;
		s->fn_arg = arg;
	}
	return s;
}

vx_histogram *vx_metrics_histogram(vx_metrics *m, const char *name,
				   const char *help, const char *labels,
				   const double *bounds, size_t n_bounds)
{
	if (n_bounds > MAX_BUCKETS)
		n_bounds = MAX_BUCKETS;
	struct vx_series *s = series_add(m, KIND_HISTOGRAM, name, help, labels);
	if (s && !s->n_bounds) {
		memcpy(s->bounds, bounds, n_bounds * sizeof(*bounds));
		s->n_bounds = n_bounds;
	}
	return s;
}

void vx_counter_add(vx_counter *c, uint64_t n)
{
	if (c)
		atomic_fetch_add_explicit(&c->count, n, memory_order_relaxed);
}

static void atomic_add_double(_Atomic double *a, double d)
{
	double old = atomic_load_explicit(a, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(a, &old, old + d,
						      memory_order_relaxed,
						      memory_order_relaxed))
		;
}

void vx_histogram_observe(vx_histogram *h, double v)
{
	if (!h)
		return;
	size_t i = 0;
	while (i < h->n_bounds && v > h->bounds[i])
		i++;
	if (i < h->n_bounds)
		atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_add_double(&h->value, v);
}

static void render_labels(vx_buf *out, const char *labels, const char *extra)
{
	if (!labels && !extra)
		return;
	vx_buf_puts(out, "{");
	if (labels)
		vx_buf_puts(out, labels);
	if (labels && extra)
		vx_buf_puts(out, ",");
	if (extra)
		vx_buf_puts(out, extra);
	vx_buf_puts(out, "}");
}

static void render_series(vx_buf *out, struct vx_series *s)
{
	switch (s->kind) {
	case KIND_COUNTER:
		vx_buf_puts(out, s->name);
		render_labels(out, s->labels, NULL);
		vx_buf_printf(out, " %llu\n", (unsigned long long)
			      atomic_load_explicit(&s->count, memory_order_relaxed));
		break;
	case KIND_GAUGE_FN: {
		double v = s->fn(s->fn_arg);
		vx_buf_puts(out, s->name);
		render_labels(out, s->labels, NULL);
		vx_buf_printf(out, " %.17g\n", v);
		break;
	}
	case KIND_HISTOGRAM: {
		uint64_t cum = 0;
		char le[48];
		for (size_t i = 0; i < s->n_bounds; i++) {
			cum += atomic_load_explicit(&s->buckets[i],
						    memory_order_relaxed);
			snprintf(le, sizeof(le), "le=\"%g\"", s->bounds[i]);
			vx_buf_printf(out, "%s_bucket", s->name);
			render_labels(out, s->labels, le);
			vx_buf_printf(out, " %llu\n", (unsigned long long)cum);
		}
		uint64_t count = atomic_load_explicit(&s->count,
						      memory_order_relaxed);
		vx_buf_printf(out, "%s_bucket", s->name);
		render_labels(out, s->labels, "le=\"+Inf\"");
		vx_buf_printf(out, " %llu\n", (unsigned long long)count);
		vx_buf_printf(out, "%s_sum", s->name);
		render_labels(out, s->labels, NULL);
		vx_buf_printf(out, " %.9g\n",
			      atomic_load_explicit(&s->value, memory_order_relaxed));
		vx_buf_printf(out, "%s_count", s->name);
		render_labels(out, s->labels, NULL);
		vx_buf_printf(out, " %llu\n", (unsigned long long)count);
		break;
	}
	}
}

int vx_metrics_render(vx_metrics *m, vx_buf *out)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	pthread_mutex_lock(&m->lock);
	const char *prev = NULL;
	for (struct vx_series *s = m->head; s; s = s->next) {
		if (!prev || strcmp(prev, s->name) != 0) {
			vx_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n",
				      s->name, s->help, s->name, types[s->kind]);
			prev = s->name;
		}
		render_series(out, s);
	}
	pthread_mutex_unlock(&m->lock);
	return out->data ? 0 : -ENOMEM;
}
