-- Placeholder for 000007, which the inbound-shipments branch adds (issue 15).
-- Migrations are numbered without gaps, and transfers in transit are 000008:
-- this file only keeps the numbering whole on the transit branch. When both
-- branches are merged, delete this file in favour of inbound's 000007.
select 1;
