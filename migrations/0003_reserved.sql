-- placeholder for migration 3, which the Matrix branch takes: delete this file when merging that branch
SELECT 1;
