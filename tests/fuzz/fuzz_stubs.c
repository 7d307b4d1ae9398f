/*
 * fuzz_stubs.c - link-time stand-ins for the request API of common/vx_req.c,
 * which vx_reqbody.o refers to but no harness calls (llm_params.c uses
 * only vx_utf8_valid from it). Each aborts, so a call would show.
 */
#include <stdlib.h>

void vx_req_body(void);
void vx_req_content_type(void);
void vx_req_error(void);
void vx_req_form(void);
void vx_req_media_type(void);
void vx_req_query(void);

void vx_req_body(void) { abort(); }
void vx_req_content_type(void) { abort(); }
void vx_req_error(void) { abort(); }
void vx_req_form(void) { abort(); }
void vx_req_media_type(void) { abort(); }
void vx_req_query(void) { abort(); }
