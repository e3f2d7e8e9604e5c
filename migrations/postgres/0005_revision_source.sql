-- Where a revision was copied from (CopyContactInfo): the source revision's
-- resource name, `partners/{p}/environments/{e}/contactInfo/revisions/{n}`.
-- NULL for UpdateContacts, and for every row an older release writes: it
-- does not know the column, and NULL is what it means.
ALTER TABLE contact_info_revisions ADD COLUMN source TEXT;
