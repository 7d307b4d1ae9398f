/*
 * jobs.c - voxline-llm's NATS job (docs/jobs.md): a POST /generate body as
 * "request", through the route's core: llm_params_parse, llm_gen_admit,
 * llm_gen_run, llm_generate_json. Never streamed: the answer is one message.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "llm_gen.h"
#include "llm_params.h"
#include "llm_service.h"
#include "vx_jobs.h"

typedef struct jobs_gen {
	vx_buf content, reasoning;
} jobs_gen;

static int jobs_piece(void *user, llm_piece_kind kind, const char *text,
		      size_t len)
{
	jobs_gen *g = user;
	return vx_buf_append(kind == LLM_REASONING ? &g->reasoning :
			     &g->content, text, len) < 0;
}

void llm_jobs_run(void *user, const vx_job *job, vx_job_result *res)
{
	llm_service *svc = user;
	char *body = cJSON_PrintUnformatted(job->request);
	if (!body) {
		vx_job_fail(res, 500, "out_of_memory", "out of memory");
		return;
	}
	llm_params p;
	llm_params_error e;
	jobs_gen g = {0};
	int r = llm_params_parse(body, strlen(body), &svc->limits, &p, &e);
	if (r < 0) {
		vx_job_fail(res, e.status, e.code, "%s", e.message);
		goto out_release;
	}
	p.stream = false;
	p.req.request_id = job->id;
	if (llm_gen_admit(svc) < 0) {
		vx_job_fail(res, 503, "overloaded", "all %d generation slots "
			    "are busy", svc->max_concurrent);
		goto out_release;
	}
	llm_gen_result gr;
	llm_gen_run(svc, &p, job->cancel, jobs_piece, &g, &gr);
	llm_gen_leave(svc);
	if (gr.status)
		vx_job_fail(res, gr.status == 499 ? 503 : gr.status, gr.code,
			    "%s", gr.error);
	else
		llm_generate_json(svc, &p, &g.content, &g.reasoning, &gr,
				  &res->json);
out_release:
	llm_params_release(&p);
	vx_buf_release(&g.content);
	vx_buf_release(&g.reasoning);
	free(body);
}
