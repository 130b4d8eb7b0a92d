/* The home page: where the organisation stands and what to do next. */
#include "web.h"

void page_home(struct request *r)
{
	cJSON *view = cJSON_CreateObject();

	cJSON_AddStringToObject(view, "title", "Overview");
	cJSON_AddBoolToObject(view, "nav_home", 1);
	respond_page(r, 200, "home", view);
}
