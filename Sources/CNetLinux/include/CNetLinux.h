#pragma once
#include <stdint.h>
int cnl_placeholder(void);
