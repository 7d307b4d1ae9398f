/* vx_error.c - the JSON error object (vx_error.h). */
#include "vx_error.h"

#include <string.h>

static const char *error_type(int status)
{
	if (status == 401)
		return "authentication_error";
	if (status == 404)
		return "not_found_error";
	return status >= 500 ? "server_error" : "invalid_request_error";
}

void vx_error_json(vx_buf *out, int status, const char *code,
		   const char *param, const char *message)
{
	vx_buf_puts(out, "{\"error\":{\"code\":");
	vx_buf_json_str(out, code, strlen(code));
	vx_buf_puts(out, ",\"message\":");
	vx_buf_json_str(out, message, strlen(message));
	vx_buf_printf(out, ",\"type\":\"%s\",\"param\":", error_type(status));
	if (param && param[0])
		vx_buf_json_str(out, param, strlen(param));
	else
		vx_buf_puts(out, "null");
	vx_buf_puts(out, "}}");
}
