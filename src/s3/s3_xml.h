/* A small, bounded reader for S3's XML replies (errors, listings, multipart uploads): no
 * DTDs, no entities beyond the five predefined and numeric ones, limited depth and sizes. */
#ifndef STOWAGE_S3_XML_H
#define STOWAGE_S3_XML_H

#include <stddef.h>

#define S3_XML_MAX_DEPTH 16
#define S3_XML_MAX_TEXT 8192

/* Called at the end of every element with its path from the root ("Error/Code") and its own
 * text, entity-decoded (whitespace only for a container). A positive return stops the walk
 * and is returned. */
typedef int (*s3_xml_fn)(const char *path, const char *text, void *ud);

/* 0 when the document is well formed, the callback's value if it stopped, -1 with err on
 * malformed or oversized input. */
int s3_xml_walk(const char *xml, size_t len, s3_xml_fn fn, void *ud, char *err, size_t errlen);

#endif
