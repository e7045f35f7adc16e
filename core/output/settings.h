/*
 * settings.h - sink settings helpers shared by the sink host (settings.c).
 */
#ifndef SY_OUTPUT_SETTINGS_H
#define SY_OUTPUT_SETTINGS_H

#include <stddef.h>

#include "output/sinkhost.h"

sy_setting *sy_settings_dup(const sy_setting *s, size_t n);
const sy_setting *sy_settings_find(const sy_setting *s, size_t n, const char *key);
const char *sy_setting_type_name(sy_setting_type t);
int sy_setting_is_whole(double v);

#endif
