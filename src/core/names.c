#include "names.h"

int dns_name_valid(const char *s, size_t len, size_t max, int dots)
{
	if (len == 0 || len > max || s[0] == '-' || s[0] == '.' || s[len - 1] == '-' || s[len - 1] == '.')
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || (dots && s[i] == '.')))
			return 0;
	return 1;
}
