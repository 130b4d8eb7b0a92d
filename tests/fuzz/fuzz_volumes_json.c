/* Feeds untrusted bytes, as a backup's <name>-volumes.json read back from the repository, to
 * what the restore engine asks of it: the dataSource of each entry (csi_restore_pvc_source),
 * in the same and in another cluster and namespace. What it accepts it must write back whole. */
#include "job_volumes.h"
#include "volume_snapshot_csi.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *doc = cJSON_ParseWithLength((const char *)data, size), *e, *list;
	char err[1024];

	list = cJSON_IsArray(doc) ? doc : NULL;
	cJSON_ArrayForEach(e, list) {
		struct csi_snapshot s, again;
		cJSON *ds = NULL, *back;

		for (int same = 0; same < 2; same++) {
			if (csi_restore_pvc_source(e, same, "shop", &ds, err, sizeof err) == 1 &&
			    (!cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ds, "name")) || !same))
				abort();	/* a dataSource has a name, and only in the same cluster */
			cJSON_Delete(ds);
			ds = NULL;
		}
		if (csi_snapshot_from_json(cJSON_GetObjectItemCaseSensitive(e, "volume_snapshot"), &s, err, sizeof err) == 0) {
			back = csi_snapshot_to_json(&s);
			if (csi_snapshot_from_json(back, &again, err, sizeof err) != 0 || memcmp(&s, &again, sizeof s) != 0)
				abort();
			cJSON_Delete(back);
		}
	}
	cJSON_Delete(doc);
	return 0;
}
