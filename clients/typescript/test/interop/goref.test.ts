/**
 * The integration tests that Go goomerang v0.3.0's behaviour allows, against
 * its refserver (GOREF_DIR: the bin folder `make goref` builds):
 * the same client is the browser client of Go goomerang users. Not size
 * limits or unknown kinds: Go has no limit, and no answer to an unknown kind.
 */
import { commonSuite } from "../node/suite.js";
import { startGoref } from "../helpers.js";

commonSuite("Go goomerang refserver", () => startGoref(), { ordered: false });
