/* The three roles and their names, as the API and the store spell them. */
#include <string.h>

#include "hub/store.h"

const char *cd_role_name(cd_role role) {
    switch (role) {
    case CD_ROLE_ADMIN: return "admin";
    case CD_ROLE_TEACHER: return "teacher";
    case CD_ROLE_STUDENT: return "student";
    }
    return "student";
}

int cd_role_parse(const char *name, cd_role *out) {
    if (!name) return -1;
    if (!strcmp(name, "admin")) *out = CD_ROLE_ADMIN;
    else if (!strcmp(name, "teacher")) *out = CD_ROLE_TEACHER;
    else if (!strcmp(name, "student")) *out = CD_ROLE_STUDENT;
    else return -1;
    return 0;
}
